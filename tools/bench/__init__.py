"""Benchmarks you can reproduce: `python -m tools.bench SUITE` runs one suite through tfmm's public API and
writes `benchmarks/SUITE.json` (git commit and dirty flag, a hash of the suite's settings, the machine's CPU
model and flags, and the tables); `BENCHMARKS.md` is rendered from those files and the hand-written notes in
`benchmarks/notes/SUITE.md`. `--smoke` runs a suite on tiny settings into a scratch folder (the tests do)."""
