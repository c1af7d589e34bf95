"""blindproof.server"""
