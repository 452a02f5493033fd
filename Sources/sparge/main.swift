print("sparge")
