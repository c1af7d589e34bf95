"""blindproof.zk.ops"""
