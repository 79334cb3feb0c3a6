"""What the server and the client both need. Kept free of server dependencies: volunteers install
only the client's light extras."""
