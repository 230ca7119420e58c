"""CEL terms several rules of the RerankerService spec share (the spec's own and the engines')."""

AUTOSCALING = "(has(self.autoscaling) && has(self.autoscaling.enabled) && self.autoscaling.enabled)"
GPU = "(has(self.resources) && has(self.resources.gpus) && self.resources.gpus >= 1)"
