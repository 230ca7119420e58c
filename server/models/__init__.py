"""server/models"""
