-----BEGIN PGP MESSAGE-----

owGbwMvMwCG2q+ZdSYi2NgvjGoUk9rRcvazi/Lxs/tnrqpWKkzNScxPDUouKM/Pz
lKyMajtKWRjEOBhkxRRZos7PYZQJ4N5lyqcnATOBlQmkj4GLUwAm8jeC4Z+tx9bM
iWL/Ds3e/oT911LdvYcObDksvb2P8XDq3o/rzb5MYGS4kWO3KNnbZ81Mgzeasr9E
/Pgnbn1wJmbyz5N6PIsiRa9xAAA=
=hrv0
-----END PGP MESSAGE-----
