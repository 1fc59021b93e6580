"""The console's served parts: the live figures drawn on the overview, the claims list and a claim's page.

The overview page itself is a renderer of the lifecycle graph (`_diagrams.console`), written the same into
a diagrams folder; what is here reads a database, and `claimstate.http` serves it (read-only).
"""
