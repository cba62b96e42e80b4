"""(private)"""
