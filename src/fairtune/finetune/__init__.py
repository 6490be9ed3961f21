"""Fine-tuning: the losses, the Fisher importances, the masks, precision, the shared backbone
features and the one training loop every method runs. See ARCHITECTURE.md."""
