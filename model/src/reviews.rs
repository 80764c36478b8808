//! Synthetic Korean dessert reviews of review length (one to three sentences), deterministic,
//! for the benchmark and tests.

const OPENINGS: &[&str] = &[
    "딸기 생크림 케이크를 주문했어요.",
    "생일이라 초코 케이크를 시켰습니다.",
    "마카롱 세트 처음 먹어봤어요.",
    "치즈케이크 홀 사이즈로 샀어요.",
    "티라미수가 유명하다고 해서 주문했습니다.",
    "에그타르트 여섯 개 포장해 왔어요.",
    "말차 롤케이크 선물용으로 구매했어요.",
    "레몬 파운드케이크 두 번째 주문이에요.",
];

const MIDDLES: &[&str] = &[
    "빵이 촉촉하고 크림이 부드러워서 정말 맛있었어요.",
    "생각보다 너무 달아서 반밖에 못 먹었어요.",
    "단맛이 적당하고 과일이 신선해서 좋았습니다.",
    "가격이 조금 비싸지만 맛은 그만한 가치가 있어요.",
    "시트가 퍽퍽하고 크림에서 냄새가 나서 실망했어요.",
    "식감이 쫀득하고 향이 진해서 아이들도 잘 먹었어요.",
    "가성비가 좋아서 자주 시켜 먹을 것 같아요.",
    "크림이 느끼하지 않고 깔끔해서 계속 손이 가요.",
];

const CLOSINGS: &[&str] = &[
    "배달도 빨리 와서 만족합니다.",
    "포장이 찌그러져서 와서 아쉬웠어요.",
    "사장님이 친절하게 응대해 주셨어요.",
    "배송이 한 시간 넘게 늦었어요.",
    "다음에도 재구매할게요!",
    "선물했는데 다들 좋아했어요.",
    "",
    "보냉 포장이 꼼꼼해서 녹지 않았어요.",
];

/// The `i`-th synthetic review (cycling through every combination).
pub fn review(i: usize) -> String {
    let o = OPENINGS[i % OPENINGS.len()];
    let m = MIDDLES[(i / OPENINGS.len()) % MIDDLES.len()];
    let c = CLOSINGS[(i / (OPENINGS.len() * MIDDLES.len()) + i) % CLOSINGS.len()];
    [o, m, c]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `n` synthetic reviews.
pub fn reviews(n: usize) -> Vec<String> {
    (0..n).map(review).collect()
}
