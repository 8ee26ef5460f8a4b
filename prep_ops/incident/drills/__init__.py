"""Incident drills: each module makes a scratch database with sample data and injects one kind of
incident into it, so the incident runbooks can be rehearsed for real (mode="drill")."""
