"""What is computed from runs and configurations: baseline vs variant (`compare.py`), per-head statistics
(`headstats.py`), attention patterns and their costs (`patterns.py`), global-token presets (`presets.py`), sweeps
(`sweep.py`), and time/memory scaling (`scaling.py`, `peak_memory.py`). No streamlit, no figures."""
