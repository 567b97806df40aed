"""Running a model: the Longformer encoder over Hugging Face weights (`encoder.py`), scoped capture hooks
(`capture.py`), BERT-to-Longformer conversion (`convert.py`), loading checkpoints (`loading.py`), the runner
(`runner.py`), task heads and their predictions (`heads.py`, `predictions.py`) and a run's result with its file
format (`result.py`). Builds on `lfviz.attention`."""
