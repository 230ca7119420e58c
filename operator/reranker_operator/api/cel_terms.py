"""CEL terms several rules of the RerankerService spec share (the spec's own and the engines')."""

AUTOSCALING = "(has(self.autoscaling) && has(self.autoscaling.enabled) && self.autoscaling.enabled)"
GPU = "(has(self.resources) && has(self.resources.gpus) && self.resources.gpus >= 1)"
# the pod gets a CUDA device, whichever way spec.resources asks for one (ResourcesSpec.on_gpu)
CUDA = (
    "(has(self.resources) && ((has(self.resources.gpus) && self.resources.gpus >= 1)"
    " || has(self.resources.mig) || has(self.resources.sharedGpu) || has(self.resources.dra)))"
)
