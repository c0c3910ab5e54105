"""Display only: bounded controls, the experiment panel with Run/Stop, live plots, timeline plots.

Nothing here trains; a panel drives an experiment's generator and draws its rows.
"""
