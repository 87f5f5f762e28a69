namespace DiffusionPeft.ToyModel.Evaluators;

/// <summary>
/// How well similarities rank the right candidates: the share of queries whose most similar candidate is right
/// (recall@1), and the mean rank of the right candidates (1 = first; ties count against), with the values a random
/// ranking has on average.
/// </summary>
public sealed record RankStats(int Queries, int Candidates, double Top1, double MeanRank, double ChanceTop1, double ChanceMeanRank)
{
    /// <summary>
    /// For each query row of <paramref name="similarity"/>, the candidates are the columns except those
    /// <paramref name="excluded"/> says, and the right ones those <paramref name="right"/> says.
    /// </summary>
    public static RankStats Of(double[,] similarity, Func<int, int, bool> right, Func<int, int, bool>? excluded = null)
    {
        int queries = similarity.GetLength(0), columns = similarity.GetLength(1);
        excluded ??= (_, _) => false;
        int top1 = 0, ranked = 0, candidates = 0;
        double rankSum = 0, chanceTop1 = 0, chanceRank = 0;
        for (int q = 0; q < queries; q++)
        {
            var pool = Enumerable.Range(0, columns).Where(c => !excluded(q, c)).ToArray();
            var positives = pool.Where(c => right(q, c)).ToArray();
            if (positives.Length == 0) throw new ArgumentException($"query {q} has no right candidate");
            candidates = pool.Length;
            int best = pool.MaxBy(c => similarity[q, c]);
            if (right(q, best)) top1++;
            foreach (var p in positives)
            {
                // Rank among the wrong candidates and itself: other right ones do not push a right one down.
                rankSum += 1 + pool.Count(c => !right(q, c) && similarity[q, c] >= similarity[q, p]);
                ranked++;
            }
            chanceTop1 += positives.Length / (double)pool.Length;
            chanceRank += (pool.Length - positives.Length + 2) / 2.0 * positives.Length;
        }
        return new RankStats(queries, candidates, top1 / (double)queries, rankSum / ranked, chanceTop1 / queries, chanceRank / ranked);
    }
}
