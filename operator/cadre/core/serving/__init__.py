"""A ModelDeployment's children and lifecycle: pure, like `cadre.core.training`."""
