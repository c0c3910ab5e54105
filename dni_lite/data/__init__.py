"""Data: classification data sets (``datasets``) and sequence tasks and corpora (``tasks``)."""
