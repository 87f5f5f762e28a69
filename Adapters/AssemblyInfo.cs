namespace DiffusionPeft.Adapters;
