"""Safe handling of untrusted uploads: body limits, image decoding, zip archives."""
