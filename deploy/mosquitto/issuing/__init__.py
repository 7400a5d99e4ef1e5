"""The jobs of issue-credentials.py: read the site inventory, issue its accounts and files.

inventory reads the file, site_model validates it and lists the broker accounts, acl renders
acl.template, passwords and certs make the secrets, owners hands files to their users, and run
puts them together under --out. Standard library only (PyYAML when installed).
"""
