"""DANN: domain-adversarial training (Ganin & Lempitsky 2015) and the methods built on it, for digits
and folders of small pictures. The scripts at the repository's root are thin command lines over
this package; README.md, 'How the code is organised', maps its modules. Importing the package
imports nothing heavy: each module brings torch in when it needs it."""
