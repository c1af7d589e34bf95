"""blindproof.client"""
