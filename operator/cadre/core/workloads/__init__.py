"""What every workload kind (TrainingJob, ModelDeployment) builds alike: labels, owner
references, the flavour's placement and a pod's resources, build errors."""
