using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace DiffusionPeft.Tests.Adapters;

/// <summary>An attention block with the diffusers names and the model contract: Linears in Module&lt;Tensor, Tensor&gt; fields, to_out a ModuleList.</summary>
internal sealed class FakeAttention : Module<Tensor, Tensor>
{
    public Module<Tensor, Tensor> to_q, to_k, to_v;
    public ModuleList<Module<Tensor, Tensor>> to_out;
    private readonly Tensor? _context;

    public FakeAttention(int dim, int contextDim, Tensor? context) : base(nameof(FakeAttention))
    {
        to_q = Linear(dim, dim, hasBias: false, dtype: ScalarType.Float64);
        to_k = Linear(contextDim, dim, hasBias: false, dtype: ScalarType.Float64);
        to_v = Linear(contextDim, dim, hasBias: false, dtype: ScalarType.Float64);
        to_out = new ModuleList<Module<Tensor, Tensor>>(Linear(dim, dim, dtype: ScalarType.Float64), Dropout(0.0));
        _context = context;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var c = _context ?? x;
        var h = to_q.forward(x).tanh() + to_k.forward(c).mean([-2], true) * to_v.forward(c).mean([-2], true);
        return to_out[1].forward(to_out[0].forward(h));
    }
}

internal sealed class FakeTransformerBlock : Module<Tensor, Tensor>
{
    public FakeAttention attn1, attn2;
    public Module<Tensor, Tensor> proj_in;

    public FakeTransformerBlock(int dim, int contextDim, Tensor context) : base(nameof(FakeTransformerBlock))
    {
        attn1 = new FakeAttention(dim, dim, null);
        attn2 = new FakeAttention(dim, contextDim, context);
        proj_in = Linear(dim, dim, dtype: ScalarType.Float64);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = proj_in.forward(x);
        x = x + attn1.forward(x);
        return x + attn2.forward(x);
    }
}

internal sealed class FakeTransformer : Module<Tensor, Tensor>
{
    public ModuleList<FakeTransformerBlock> transformer_blocks;

    public FakeTransformer(int dim, int contextDim, Tensor context) : base(nameof(FakeTransformer))
    {
        transformer_blocks = new ModuleList<FakeTransformerBlock>(new FakeTransformerBlock(dim, contextDim, context));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => transformer_blocks.Aggregate(x, (h, b) => b.forward(h));
}

internal sealed class FakeBlock : Module<Tensor, Tensor>
{
    public ModuleList<FakeTransformer> attentions;

    public FakeBlock(int dim, int contextDim, Tensor context, int count) : base(nameof(FakeBlock))
    {
        attentions = new ModuleList<FakeTransformer>(Enumerable.Range(0, count).Select(_ => new FakeTransformer(dim, contextDim, context)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => attentions.Aggregate(x, (h, b) => b.forward(h));
}

/// <summary>down_blocks.{0,1}.attentions.{0,1}, mid_block.attentions.0: 5 transformer blocks, 40 attention Linears (float64).</summary>
internal sealed class FakeUNet : Module<Tensor, Tensor>
{
    public ModuleList<FakeBlock> down_blocks;
    public FakeBlock mid_block;
    public Module<Tensor, Tensor> time_embedding;

    public FakeUNet(int dim = 8, int contextDim = 12, long seed = 1) : base(nameof(FakeUNet))
    {
        manual_seed(seed);
        var context = randn([2, 3, contextDim], ScalarType.Float64);
        down_blocks = new ModuleList<FakeBlock>(new FakeBlock(dim, contextDim, context, 2), new FakeBlock(dim, contextDim, context, 2));
        mid_block = new FakeBlock(dim, contextDim, context, 1);
        time_embedding = Linear(dim, dim, dtype: ScalarType.Float64);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = time_embedding.forward(x);
        foreach (var b in down_blocks) x = b.forward(x);
        return mid_block.forward(x);
    }
}

internal sealed class FakeSelfAttn : Module<Tensor, Tensor>
{
    public Module<Tensor, Tensor> q_proj, k_proj, v_proj, out_proj;

    public FakeSelfAttn(int dim) : base(nameof(FakeSelfAttn))
    {
        q_proj = Linear(dim, dim, dtype: ScalarType.Float64);
        k_proj = Linear(dim, dim, dtype: ScalarType.Float64);
        v_proj = Linear(dim, dim, dtype: ScalarType.Float64);
        out_proj = Linear(dim, dim, dtype: ScalarType.Float64);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => out_proj.forward(q_proj.forward(x).tanh() + k_proj.forward(x).sigmoid() * v_proj.forward(x));
}

internal sealed class FakeMlp : Module<Tensor, Tensor>
{
    public Module<Tensor, Tensor> fc1, fc2;

    public FakeMlp(int dim) : base(nameof(FakeMlp))
    {
        fc1 = Linear(dim, 2 * dim, dtype: ScalarType.Float64);
        fc2 = Linear(2 * dim, dim, dtype: ScalarType.Float64);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => fc2.forward(fc1.forward(x).tanh());
}

internal sealed class FakeEncoderLayer : Module<Tensor, Tensor>
{
    public FakeSelfAttn self_attn;
    public FakeMlp mlp;

    public FakeEncoderLayer(int dim) : base(nameof(FakeEncoderLayer))
    {
        self_attn = new FakeSelfAttn(dim);
        mlp = new FakeMlp(dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) { x = x + self_attn.forward(x); return x + mlp.forward(x); }
}

internal sealed class FakeEncoder : Module<Tensor, Tensor>
{
    public ModuleList<FakeEncoderLayer> layers;

    public FakeEncoder(int dim, int count) : base(nameof(FakeEncoder))
    {
        layers = new ModuleList<FakeEncoderLayer>(Enumerable.Range(0, count).Select(_ => new FakeEncoderLayer(dim)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => layers.Aggregate(x, (h, l) => l.forward(h));
}

internal sealed class FakeTextTransformer : Module<Tensor, Tensor>
{
    public FakeEncoder encoder;

    public FakeTextTransformer(int dim, int count) : base(nameof(FakeTextTransformer))
    {
        encoder = new FakeEncoder(dim, count);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => encoder.forward(x);
}

/// <summary>text_model.encoder.layers.N.{self_attn.{q,k,v,out}_proj, mlp.fc1/fc2} (float64).</summary>
internal sealed class FakeTextEncoder : Module<Tensor, Tensor>
{
    public FakeTextTransformer text_model;

    public FakeTextEncoder(int dim = 8, int count = 2, long seed = 2) : base(nameof(FakeTextEncoder))
    {
        manual_seed(seed);
        text_model = new FakeTextTransformer(dim, count);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => text_model.forward(x);
}

/// <summary>A module tree built from dotted Linear paths, children held by name (string indexer), for weights read from files.</summary>
internal sealed class PathTree : Module<Tensor, Tensor>
{
    private readonly Dictionary<string, Module<Tensor, Tensor>> _children = new();

    public PathTree() : base(nameof(PathTree)) { }

    public Module<Tensor, Tensor> this[string name]
    {
        get => _children[name];
        set => _children[name] = value;
    }

    public override Tensor forward(Tensor x) => throw new NotSupportedException();

    /// <summary>Builds nodes for every path and a Linear of the given weight (and bias) at each leaf.</summary>
    public static PathTree Build(IEnumerable<(string Path, Tensor Weight, Tensor? Bias)> leaves)
    {
        var root = new PathTree();
        foreach (var (path, w, b) in leaves)
        {
            var seg = path.Split('.');
            var node = root;
            foreach (var s in seg[..^1])
            {
                if (!node._children.ContainsKey(s)) node.Add(s, new PathTree());
                node = (PathTree)node._children[s];
            }
            var lin = Linear(w.shape[1], w.shape[0], b is not null, dtype: w.dtype);
            using (no_grad())
            {
                lin.weight!.copy_(w);
                if (b is not null) lin.bias!.copy_(b);
            }
            node.Add(seg[^1], lin);
        }
        return root;
    }

    private void Add(string name, Module<Tensor, Tensor> m)
    {
        _children[name] = m;
        register_module(name, m);
    }
}
