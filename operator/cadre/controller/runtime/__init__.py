"""`cadre run`: the operator process (Kopf, the handlers, metrics, health, logs).

`main.run(args)` runs it; `args` has its flags. Nothing is imported here, so the CLI
can build its parser without importing Kopf.
"""
