"""``python -m bench [--quick | --full] [--scale 100] [--only ITEM] [--out DIR]``."""
from bench.runner import main

raise SystemExit(main())
