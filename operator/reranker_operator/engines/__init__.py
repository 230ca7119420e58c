"""The inference engines a RerankerService's Deployment can run."""
