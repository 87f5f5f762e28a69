namespace DiffusionPeft.DreamBooth;
