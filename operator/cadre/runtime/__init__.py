"""`cadre run`: the operator process (Kopf, the handlers, metrics, health, logs).

`cadre.runtime.main.run(args)` runs it; `cadre.runtime.args` has its flags. Nothing is
imported here, so the CLI can build its parser without importing Kopf.
"""
