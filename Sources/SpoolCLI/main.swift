import Spool
print("todo")
