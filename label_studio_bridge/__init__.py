"""A Label Studio ML backend over the annotation service: our predictions prefilled in Label
Studio, scored in our ``/suggest`` order, and Label Studio's annotations as our labels
(``retrain_every`` then retrains). Run it with ``python -m label_studio_bridge``; see
``docs/LABEL_STUDIO.md``. It talks to the service only through ``xmodel_client``."""
