Console.WriteLine("dpeft");
