"""blindproof.ee"""
