"""The controller layer: thin adapters between the API server and the pure core.

The client talks to the API; the cache (store fed by watches and a periodic relist) holds
what is observed; the leader elector decides which replica may write; the admission
loop, the queue-status writer, the budget writer and the reconcilers compute what to do
from the cache through the core and carry it out; Kopf handlers only feed the cache.
"""
