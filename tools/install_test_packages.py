"""System packages the tests need and pip cannot install: Debian's Chromium and its driver, for the demo's
browser tests. Installs them with apt-get when they are missing (as root); says what to run otherwise.

    python -m tools.install_test_packages
"""

import os
import shutil
import subprocess
import sys

PACKAGES = {"chromium": "chromium", "chromedriver": "chromium-driver"}  # command → Debian package


def main():
    missing = [package for command, package in PACKAGES.items() if not shutil.which(command)]
    if not missing:
        return 0
    if not shutil.which("apt-get") or os.geteuid() != 0:
        print(f"the browser tests need the Debian packages {' '.join(missing)}: "
              f"run `sudo apt-get install -y {' '.join(missing)}`", file=sys.stderr)
        return 1
    print(f"installing {' '.join(missing)} with apt-get (for the demo's browser tests)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            print(f"`{' '.join(command)}` failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}", file=sys.stderr)
            return done.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
