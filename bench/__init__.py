"""Lambdalet's benchmarks: the project and its peers, side by side, in one run.

Run from the repository root with `python -m bench`. Tests never time
anything; this package does, and prints ratios against floors and peers
measured in the same run, because these machines are shared and noisy.
"""
