print("run an app: python -m tfmm.apps.retrieval --help")
