"""Face enrolment with consent, per-gate gallery publication and erasure confirmed by every gate.

``service.EnrolmentService`` is what the API, the ingest and the maintenance loop call; the other
modules are its steps: ``photos`` (checking a photo, encoding its face), ``sealing`` (templates
and photos encrypted at rest), ``consent``, ``galleries`` (who goes into which gate's gallery),
``deliveries`` (versions and one delivery row per gate and version), ``sender`` (building and
publishing each gate's gallery), ``erasure``, ``reports`` (what the service answers), ``queries``
(small reads they share) and ``errors``. What is stored, and for how long, is docs/privacy.md.
"""
