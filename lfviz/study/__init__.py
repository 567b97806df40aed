"""Placement studies over a corpus: which strategy for global tokens keeps a model closest to full attention,
measured on every document (`job.run_study`), in this process or on Ray (`distributed`)."""
