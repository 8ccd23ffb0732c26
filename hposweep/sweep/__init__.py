"""The orchestration: per backbone, a study whose trials train every fold through the
trainer, keep the best checkpoint and are tracked in MLflow. The only sub-package that
ties study, training, checkpoints, tracking and console together (it may import all but
cli, reports and workers)."""
