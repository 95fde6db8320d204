"""Evaluation: WIDER FACE (official protocol), FDDB, AFW/PASCAL faces, landmarks."""
