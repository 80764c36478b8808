//! Korean review vocabulary: word stems per aspect, sentiment stems, negations, and the anchor
//! phrases whose embeddings stand for each aspect and sentiment.

use crate::label::Aspect;

/// Stems that mark a clause as talking about an aspect.
pub const ASPECT_STEMS: &[(Aspect, &[&str])] = &[
    (
        Aspect::Taste,
        &[
            "맛있", "맛나", "맛없", "맛이", "맛은", "맛도", "맛은", "풍미", "고소", "느끼", "향이",
            "향긋", "감칠",
        ],
    ),
    (
        Aspect::Sweetness,
        &[
            "달아",
            "달고",
            "달다",
            "달지",
            "달콤",
            "달달",
            "달았",
            "달긴",
            "단맛",
            "당도",
            "너무 단",
            "덜 단",
            "안 단",
            "설탕",
        ],
    ),
    (
        Aspect::Texture,
        &[
            "식감",
            "촉촉",
            "부드럽",
            "부드러",
            "쫀득",
            "쫄깃",
            "바삭",
            "퍽퍽",
            "딱딱",
            "눅눅",
            "질기",
            "폭신",
            "꾸덕",
            "크리미",
            "뻑뻑",
        ],
    ),
    (
        Aspect::Freshness,
        &[
            "신선",
            "싱싱",
            "상했",
            "상한",
            "쉰내",
            "유통기한",
            "오래된",
            "갓 만든",
            "굳어",
            "냄새",
            "재료",
        ],
    ),
    (
        Aspect::Price,
        &[
            "가격",
            "비싸",
            "비쌌",
            "저렴",
            "싸고",
            "싸서",
            "가성비",
            "값",
            "할인",
            "돈이",
            "돈 ",
        ],
    ),
    (
        Aspect::Packaging,
        &[
            "포장",
            "박스",
            "상자",
            "케이스",
            "찌그러",
            "뭉개",
            "무너",
            "보냉",
            "아이스팩",
            "리본",
        ],
    ),
    (
        Aspect::Delivery,
        &[
            "배달",
            "배송",
            "도착",
            "늦게 왔",
            "빨리 왔",
            "빨리 와",
            "기사님",
            "퀵",
        ],
    ),
    (
        Aspect::Service,
        &[
            "친절",
            "직원",
            "사장님",
            "응대",
            "서비스",
            "매장",
            "알바",
            "답변",
        ],
    ),
];

/// Stems of positive judgements.
pub const POSITIVE_STEMS: &[&str] = &[
    "맛있",
    "맛나",
    "최고",
    "좋",
    "추천",
    "만족",
    "훌륭",
    "완벽",
    "촉촉",
    "부드럽",
    "부드러",
    "신선",
    "싱싱",
    "친절",
    "빠르",
    "빨리",
    "예쁘",
    "예뻐",
    "깔끔",
    "저렴",
    "행복",
    "재구매",
    "또 시킬",
    "또 살",
    "쫀득",
    "쫄깃",
    "바삭",
    "고소",
    "적당",
    "감사",
    "사랑",
    "대박",
    "꼼꼼",
    "정성",
    "괜찮",
    "안 달아서",
    "덜 달아서",
    "달지 않아서",
    "폭신",
    "향긋",
];

/// Stems of negative judgements.
pub const NEGATIVE_STEMS: &[&str] = &[
    "맛없",
    "별로",
    "실망",
    "최악",
    "비싸",
    "비쌌",
    "늦",
    "퍽퍽",
    "딱딱",
    "눅눅",
    "상했",
    "상한",
    "쉰내",
    "찌그러",
    "뭉개",
    "무너",
    "느끼",
    "아쉽",
    "아쉬",
    "너무 달",
    "너무 단",
    "엉망",
    "불만",
    "환불",
    "다시는",
    "비추",
    "식어",
    "녹아",
    "뻑뻑",
    "질기",
    "불친절",
    "짜증",
    "형편없",
    "후회",
    "냄새가 나",
    "냄새 나",
    "안 좋",
    "그저 그",
];

/// Markers that, right after a judgement stem, negate it ("좋지 않", "늦지 않").
pub const NEGATION_AFTER: &[&str] = &["지 않", "지않", "지는 않", "진 않", "지 못"];

/// Markers that, right before a judgement stem, negate it ("안 좋" is listed whole; "못 ").
pub const NEGATION_BEFORE: &[&str] = &["안 ", "못 ", "안", "못"];

/// Connectives after which a new clause (often a contrast) starts.
pub const CLAUSE_BREAKS: &[&str] = &["지만", "는데", "은데", "그런데", "하지만", "근데", "그러나"];

/// Anchor phrases of each aspect; their mean embedding stands for the aspect.
pub const ASPECT_ANCHORS: &[(Aspect, &[&str])] = &[
    (
        Aspect::Taste,
        &["맛이 어땠는지", "케이크 맛", "디저트의 맛과 풍미"],
    ),
    (
        Aspect::Sweetness,
        &["얼마나 단지", "당도와 단맛", "설탕이 많이 들어간 달기"],
    ),
    (
        Aspect::Texture,
        &["식감과 질감", "촉촉하고 부드러운 정도", "빵의 결과 쫀득함"],
    ),
    (
        Aspect::Freshness,
        &["재료의 신선도", "갓 만든 것인지 오래된 것인지", "유통기한"],
    ),
    (
        Aspect::Price,
        &["가격과 가성비", "비싼지 저렴한지", "돈 값"],
    ),
    (
        Aspect::Packaging,
        &["포장 상태", "상자와 케이스", "포장이 찌그러졌는지"],
    ),
    (
        Aspect::Delivery,
        &["배달 시간", "배송 속도", "주문한 물건의 도착"],
    ),
    (
        Aspect::Service,
        &["직원의 친절함", "매장 서비스", "사장님의 응대"],
    ),
];

/// Anchor phrases of a positive review.
pub const POSITIVE_ANCHORS: &[&str] = &["정말 좋았어요, 만족합니다", "최고예요, 강력 추천합니다"];

/// Anchor phrases of a negative review.
pub const NEGATIVE_ANCHORS: &[&str] = &[
    "정말 별로였어요, 실망했습니다",
    "최악이에요, 다시는 안 삽니다",
];
