"""The benchmark suite: ``python -m bench`` (see bench/README_SECTION.md).

Every figure is reported beside a baseline measured in the same run on the same machine,
and as the ratio of the two, because the machines this runs on are small and noisy.
"""
