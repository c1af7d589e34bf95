"""blindproof.zk"""
