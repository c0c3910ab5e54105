"""``python -m dni_lite.parallel``: one worker of a pipelined run (what torchrun starts)."""
from .worker import main

main()
