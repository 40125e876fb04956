"""Read-only views for the app (Monitor, Results). They never import torch or modelling code."""
