"""Face detection, 5-point alignment, aligned folders and their manifests, the home-made landmarker.
Imports only facecore.core and facecore.networks."""
