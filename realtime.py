"""Real-time face recognition on a webcam, a video file or a folder of images (``facecore.recognition.realtime``).

    python realtime.py --model_name NAME                     # webcam 0, window if there is a screen
    python realtime.py --source clip.mp4 -o gifs/out.gif --no-display

The same command as ``facecore-realtime`` (installed with the package); ``--help`` lists the flags.
"""
import sys

from facecore.recognition.realtime import main

if __name__ == "__main__":
    sys.exit(main())
