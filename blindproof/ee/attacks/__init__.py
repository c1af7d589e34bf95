"""blindproof.ee.attacks"""
