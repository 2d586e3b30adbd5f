import six

print("pip-app: six " + six.__version__ + " on Python " + ("3" if six.PY3 else "2"))
