"""One router per resource; gateway.api.create_app includes them all."""
