"""The shipped models by name: the table that ``facecore.core.zoo`` reads (and the checkout's ``config.py``
re-exports for the notebooks). Data only: no imports, so nothing outside the package can shadow it.

``params`` maps a model name to its checkpoint, as a path relative to the checkout (or to the folder
holding the installed package: ``facecore/weights/...`` ships inside the package); ``sha256`` maps the
name to the checkpoint's SHA-256. Read both through ``facecore.core.zoo.shipped(name)``, which also looks
for the files that are not in the package (``facecore.core.zoo.model_dirs``). Every name here can be passed
as ``model_name`` (``realtime.py --model_name``) and is evaluated by ``notebooks/id-rate.ipynb``.
"""

# name -> checkpoint path (fp16 state dicts written by the training notebooks)
params: dict[str, str] = {
    "ce-efficientnet": "notebooks/ce-loss/ce-efficientnet.pt",
    "arcface-efficientnet": "notebooks/arcface-loss/arcface-efficientnet.pt",
    "triplet-efficientnet-min-val-loss": "notebooks/triplet-loss/triplet-efficientnet-min-val-loss.pt",
    "triplet-efficientnet-last-epoch": "notebooks/triplet-loss/triplet-efficientnet-last-epoch.pt",
    "ce-inceptionresnetv1-min10": "notebooks/ce-loss/ce-inceptionresnetv1-min10.pt",
    "ce-inceptionresnetv1-min5": "notebooks/ce-loss/ce-inceptionresnetv1-min5.pt",
    # an InceptionResnetV1 taught by dlib's ResNet descriptor: the default model, shipped in the package
    "distill-inceptionresnetv1": "facecore/weights/distill-inceptionresnetv1.pt",
}

# name -> SHA-256 of the checkpoint file: checked whenever a shipped model is loaded
# (facecore.core.zoo.verify_shipped). Exporting over a shipped file (facecore.training.shipping.finalize_run) rewrites
# its line here; tests/test_zoo.py checks every file against it.
sha256: dict[str, str] = {
    "ce-efficientnet": "9c52a970ed6e7e6c90802558e615f1473b6dccf7d8f8407196d0c46f8767e66c",
    "arcface-efficientnet": "a425c3afb87b83beae63d41868e9fbccae2ed5a63faadfd3386eef7cafd22013",
    "triplet-efficientnet-min-val-loss": "2a8cb203b6b2dc56a5f97a728f3cd2a07e34c271506b1a89753e2a4d5113bd85",
    "triplet-efficientnet-last-epoch": "3ffea7e264aa1641b47aa721024e0e552e2059f3a340399eee551419e5febed2",
    "ce-inceptionresnetv1-min10": "60c7e63aae909506f310df91bdff96a2c792c482d1a23b64a30271939307431e",
    "ce-inceptionresnetv1-min5": "008793023a57ed4ad0ca956818dfca902658861dc3240fffb58476702fb545eb",
    "distill-inceptionresnetv1": "dea32f3635166f05a0a746433b53f4431b88db5c0fcc72ae839836b111c30cae",
}

# The model used when no model_name is given (realtime.py, Recognizer.from_name): the best shipped model,
# an InceptionResnetV1 taught by dlib's ResNet descriptor, then by Intel's face-reidentification-retail-0095,
# on the CelebA set and unlabelled faces (LFW 97.47 %, CFP-FP 83.64 %; docs/distillation.md). No
# teacher-space head: the recognizer matches with its own embedding. Its weights ship inside the package,
# so an installed facecore works without a checkout.
DEFAULT_MODEL: str | None = "distill-inceptionresnetv1"
