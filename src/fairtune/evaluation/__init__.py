"""Evaluation: what a model's scores measure (the declared metrics and their typed form,
thresholds, operating points, the paired bootstrap, the objectives, group thresholds, and the
held-out evidence every returned model carries). See ARCHITECTURE.md."""
