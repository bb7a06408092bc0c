"""facecore: detect -> align -> embed -> match, with training and evaluation for face recognition."""
__version__ = "0.1.0"
