"""Checkers for the notebooks' exercises, one module per notebook (nb01.py, ...).

Each checker takes the student's answer, verifies it by computation, and
returns a one-line verdict; ``None`` means "not attempted yet".
"""

NOT_YET = "Not attempted yet: replace None with your answer and run the cell again."
